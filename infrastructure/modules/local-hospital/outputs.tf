output "sql_instance_id" {
  description = "Id of the SQL instance (sub-hospitals create their databases on it)."
  value       = localcloud_sql_instance.mysql.id
}

output "sql_instance_name" {
  description = "Name of the SQL instance."
  value       = localcloud_sql_instance.mysql.name
}

output "sql_private_ip" {
  description = "Private address of the SQL instance."
  value       = localcloud_sql_instance.mysql.private_ip
}

output "database_name" {
  description = "The hospital's database."
  value       = localcloud_sql_database.main.name
}

output "database_user" {
  description = "The database user."
  value       = localcloud_sql_user.app.name
}

output "private_bucket" {
  description = "Private bucket."
  value       = localcloud_bucket.private.name
}

output "public_bucket" {
  description = "Public bucket."
  value       = localcloud_bucket.public.name
}

output "network_name" {
  description = "Private network."
  value       = localcloud_network.vpc.name
}

output "connection_secret" {
  description = "Reference of the secret that holds the MySQL connection string."
  value       = localcloud_secret.connection.reference
}
