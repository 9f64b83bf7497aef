"""The targets of the catalogue, their module revisions and which clients use each."""
