"""The clouds: per cloud, its request/input models, pre-flight checks before Terraform
and read-backs after apply. The bottom of the engine's target code: ``errors`` and
``base`` first, then the shapes shared by several clouds (``instances``, ``hospital``),
then one package per cloud. ``flows.targets`` builds its catalogue from these; nothing
here imports ``flows.targets``."""
