# A hospital's Cloud SQL instance keeps deletion protection and backups on.
package tenantform.cloudsql_protected

import data.tenantform.lib
import rego.v1

enforcement := "soft-mandatory"

deny contains msg if {
	some r in lib.planned_of("google_sql_database_instance")
	r.change.after.deletion_protection != true
	msg := sprintf("%s must have deletion_protection = true", [r.address])
}

deny contains msg if {
	some r in lib.planned_of("google_sql_database_instance")
	not backups_on(r.change.after)
	msg := sprintf("%s must have settings.backup_configuration.enabled = true", [r.address])
}

backups_on(after) if {
	backup := lib.block(lib.block(after, "settings"), "backup_configuration")
	backup.enabled == true
}
