resource "localcloud_instance" "this" {
  count = var.instance_count
  name  = "${var.instance_name_prefix}-${count.index + 1}"
  size  = var.size
  tags = {
    client     = var.client_id
    managed-by = "tenantform"
  }
}
