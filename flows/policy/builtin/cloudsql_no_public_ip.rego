# A hospital's Cloud SQL instance is reached on its private network only.
package tenantform.cloudsql_no_public_ip

import data.tenantform.lib
import rego.v1

enforcement := "hard-mandatory"

deny contains msg if {
	some r in lib.planned_of("google_sql_database_instance")
	ip := lib.block(lib.block(r.change.after, "settings"), "ip_configuration")
	ip.ipv4_enabled != false
	msg := sprintf("%s would have a public IP (settings.ip_configuration.ipv4_enabled must be false)", [r.address])
}

deny contains msg if {
	some r in lib.planned_of("google_sql_database_instance")
	settings := lib.block(r.change.after, "settings")
	count(object.get(settings, "ip_configuration", [])) == 0
	msg := sprintf("%s has no ip_configuration: it would get a public IP", [r.address])
}
