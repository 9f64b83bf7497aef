terraform {
  required_version = ">= 1.0.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 4.0, < 6.0"
    }
  }
}

# Credentials come from the worker's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# or a profile / instance role), never from variables.
provider "aws" {
  region = var.region
  default_tags {
    tags = {
      client_id  = var.client_id
      managed-by = "tenantform"
    }
  }
}
