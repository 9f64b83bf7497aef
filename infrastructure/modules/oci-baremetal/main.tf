resource "oci_core_instance" "this" {
  count               = var.instance_count
  compartment_id      = var.compartment_id
  availability_domain = var.availability_domain
  shape               = var.shape
  display_name        = "${var.instance_name_prefix}-${count.index + 1}"
  freeform_tags = {
    client_id  = var.client_id
    request_id = var.run_id
    managed-by = "tenantform"
  }
  create_vnic_details {
    subnet_id        = var.subnet_id
    assign_public_ip = true
  }
  source_details {
    source_type = "image"
    source_id   = var.image_id
  }
  # request_id names the run that created the instance: later runs leave it alone, so a
  # drift check does not see a change on every run.
  lifecycle {
    ignore_changes = [freeform_tags["request_id"]]
  }
}
