# A sub-hospital shares its parent's Cloud SQL instance, buckets and network: it reads
# the parent's outputs and creates its own database, user and secret only.
data "terraform_remote_state" "parent" {
  backend = var.parent_backend
  config  = merge(var.parent_backend_config, var.parent_backend_secrets)
}

locals {
  parent = data.terraform_remote_state.parent.outputs
  short  = substr(replace(var.client_uuid, "-", ""), 0, 20)
  labels = {
    client_uuid = var.client_uuid
    environment = var.environment
    managed-by  = "tenantform"
  }
}

resource "random_password" "db" {
  length           = var.password_length
  special          = true
  override_special = "+/"
}

resource "google_sql_database" "main" {
  name     = var.database_name
  instance = local.parent.sql_instance_id
}

resource "google_sql_user" "app" {
  name     = "u_${local.short}"
  instance = local.parent.sql_instance_id
  host     = "%"
  password = random_password.db.result
}

resource "google_secret_manager_secret" "connection" {
  secret_id = "mysql-connection-${var.client_uuid}"
  labels    = local.labels
  annotations = {
    client_name = var.client_name
  }
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "connection" {
  secret      = google_secret_manager_secret.connection.id
  secret_data = "mysql+pymysql://${google_sql_user.app.name}:${urlencode(random_password.db.result)}@${local.parent.sql_private_ip}:3306/${google_sql_database.main.name}"
}
