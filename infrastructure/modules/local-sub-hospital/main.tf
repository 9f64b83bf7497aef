# A sub-hospital shares its parent's infrastructure: it reads the parent's outputs and
# creates only what is its own, a database and user on the parent's SQL instance and a secret.
data "terraform_remote_state" "parent" {
  backend = var.parent_backend
  config  = merge(var.parent_backend_config, var.parent_backend_secrets)
}

locals {
  parent = data.terraform_remote_state.parent.outputs
  short  = substr(replace(var.client_uuid, "-", ""), 0, 20)
  labels = {
    client_uuid = var.client_uuid
    client_name = var.client_name
    environment = var.environment
    region      = var.region
    managed-by  = "tenantform"
  }
}

resource "localcloud_sql_database" "main" {
  instance_id = local.parent.sql_instance_id
  name        = var.database_name
}

# Base64 alphabet, like gcp-hospital's random_password (override_special = "+/").
resource "localcloud_password" "db" {
  length  = var.password_length
  special = true
}

resource "localcloud_sql_user" "app" {
  instance_id = local.parent.sql_instance_id
  database    = localcloud_sql_database.main.name
  name        = "u_${local.short}"
  password    = localcloud_password.db.result
}

resource "localcloud_secret" "connection" {
  secret_id = "mysql-connection-${var.client_uuid}"
  value     = localcloud_sql_user.app.connection_string
  labels    = local.labels
}
