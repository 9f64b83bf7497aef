locals {
  short = substr(replace(var.client_uuid, "-", ""), 0, 20)
  labels = {
    client_uuid = var.client_uuid
    environment = var.environment
    managed-by  = "tenantform"
  }
}

# Networking: a VPC, private service access (VPC peering) for Cloud SQL, firewall rules.
resource "google_compute_network" "vpc" {
  name                    = "vpc-${local.short}"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "main" {
  name                     = "subnet-${local.short}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = "10.20.0.0/24"
  private_ip_google_access = true
}

resource "google_compute_global_address" "private_service" {
  name          = "psa-${local.short}"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 16
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "peering" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_service.name]
}

resource "google_compute_firewall" "mysql_internal" {
  name          = "allow-mysql-${local.short}"
  network       = google_compute_network.vpc.name
  direction     = "INGRESS"
  source_ranges = [google_compute_subnetwork.main.ip_cidr_range]
  allow {
    protocol = "tcp"
    ports    = ["3306"]
  }
}

resource "google_compute_firewall" "deny_ingress" {
  name          = "deny-ingress-${local.short}"
  network       = google_compute_network.vpc.name
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
}

# Cloud SQL MySQL 8.0, private IP only.
resource "random_password" "db" {
  length           = var.password_length
  special          = true
  override_special = "+/"
}

resource "google_sql_database_instance" "mysql" {
  name                = "sql-${local.short}"
  database_version    = "MYSQL_8_0"
  region              = var.region
  deletion_protection = var.deletion_protection
  depends_on          = [google_service_networking_connection.peering]

  settings {
    tier        = var.sql_tier
    user_labels = local.labels
    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.vpc.id
    }
    backup_configuration {
      enabled            = true
      binary_log_enabled = true
    }
  }
}

resource "google_sql_database" "main" {
  name     = var.database_name
  instance = google_sql_database_instance.mysql.name
}

resource "google_sql_user" "app" {
  name     = "u_${local.short}"
  instance = google_sql_database_instance.mysql.name
  host     = "%"
  password = random_password.db.result
}

# Buckets: one private, one public.
resource "google_storage_bucket" "private" {
  name                        = "${var.client_uuid}-private"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels
  versioning {
    enabled = true
  }
}

resource "google_storage_bucket" "public" {
  name                        = "${var.client_uuid}-public"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels
}

resource "google_storage_bucket_iam_member" "public_read" {
  bucket = google_storage_bucket.public.name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}

# The connection string lives only in Secret Manager.
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
  secret_data = "mysql+pymysql://${google_sql_user.app.name}:${urlencode(random_password.db.result)}@${google_sql_database_instance.mysql.private_ip_address}:3306/${google_sql_database.main.name}"
}
