variable "run_id" {
  type        = string
  description = "Id of the run applying this stack, tagged on every resource as request_id."
}

variable "region" {
  type        = string
  description = "AWS region, e.g. us-east-2."
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "The region must look like us-east-2."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type, e.g. t2.micro."
}

variable "subnet_id" {
  type        = string
  description = "Subnet the instances live in."
  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "The subnet_id must look like subnet-0123abcd."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups attached to every instance."
}

variable "ami_id" {
  type        = string
  description = "AMI the instances boot."
  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "The ami_id must look like ami-0123abcd."
  }
}
