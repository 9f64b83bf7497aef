# The variables every instance module (local, aws-ec2, oci-baremetal) shares, declared
# once: each module links this file (a symlink the engine's workspace copy resolves).
# The name and count rules are the Python request's too (flows/clouds/instances.py);
# tests/test_modules_static.py checks the two agree.
variable "client_id" {
  type        = string
  description = "UUID of the client (tenant) that owns this stack."
}

variable "instance_name_prefix" {
  type        = string
  description = "Instances are named {prefix}-{n}."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.instance_name_prefix))
    error_message = "The instance_name_prefix must start with a letter and hold only a-z, 0-9 and '-' (at most 41 characters)."
  }
}

variable "instance_count" {
  type        = number
  description = "How many instances to run."
  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 20
    error_message = "The instance_count must be between 1 and 20."
  }
}
