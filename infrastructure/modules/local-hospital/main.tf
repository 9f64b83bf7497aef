locals {
  short = substr(replace(var.client_uuid, "-", ""), 0, 20)
  labels = {
    client_uuid = var.client_uuid
    client_name = var.client_name
    environment = var.environment
    region      = var.region
    managed-by  = "tenantform"
  }
}

resource "localcloud_network" "vpc" {
  name   = "vpc-${var.client_uuid}"
  labels = local.labels
}

resource "localcloud_sql_instance" "mysql" {
  name             = "sql-${var.client_uuid}"
  database_version = "MYSQL_8_0"
  network_id       = localcloud_network.vpc.id
  labels           = local.labels
}

resource "localcloud_sql_database" "main" {
  instance_id = localcloud_sql_instance.mysql.id
  name        = var.database_name
}

# Base64 alphabet, like gcp-hospital's random_password (override_special = "+/").
resource "localcloud_password" "db" {
  length  = var.password_length
  special = true
}

resource "localcloud_sql_user" "app" {
  instance_id = localcloud_sql_instance.mysql.id
  database    = localcloud_sql_database.main.name
  name        = "u_${local.short}"
  password    = localcloud_password.db.result
}

resource "localcloud_bucket" "private" {
  name          = "${var.client_uuid}-private"
  public        = false
  force_destroy = true
}

resource "localcloud_bucket" "public" {
  name          = "${var.client_uuid}-public"
  public        = true
  force_destroy = true
}

resource "localcloud_secret" "connection" {
  secret_id = "mysql-connection-${var.client_uuid}"
  value     = localcloud_sql_user.app.connection_string
  labels    = local.labels
}
