resource "aws_instance" "this" {
  count                  = var.instance_count
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = var.security_group_ids
  tags = {
    Name       = "${var.instance_name_prefix}-${count.index + 1}"
    request_id = var.run_id
  }
  # request_id names the run that created the instance: later runs leave it alone, so a
  # drift check does not see a change on every run.
  lifecycle {
    ignore_changes = [tags["request_id"]]
  }
}
