"""localcloud: a Terraform provider written in Python, the embedded default cloud.

Objects live as JSON files under ``$LOCALCLOUD_DATA_DIR`` so that editing or deleting
one out of band shows up as drift in ``terraform plan``.
"""
