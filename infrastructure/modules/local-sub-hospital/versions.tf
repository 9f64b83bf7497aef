terraform {
  required_version = ">= 1.0.3"
  required_providers {
    localcloud = {
      source  = "tenantform/localcloud"
      version = "0.1.0"
    }
  }
}
