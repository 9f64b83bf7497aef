"""The mkdocs hook (``mkdocs.yml``: ``hooks``): the generated reference sections come from
``deployments.docsgen``, where they are typed and checked with the rest of the code."""

from deployments.docsgen import on_page_markdown

__all__ = ["on_page_markdown"]
