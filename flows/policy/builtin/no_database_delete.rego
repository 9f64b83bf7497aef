# Only a destroy run deletes a database (or its instance): a change that would replace
# one is refused, and with it the data it holds.
package tenantform.no_database_delete

import data.tenantform.lib
import rego.v1

enforcement := "hard-mandatory"

deny contains msg if {
	input.operation != "destroy"
	some r in input.plan.resource_changes
	r.type in lib.params.database_types
	lib.deletes(r)
	msg := sprintf("%s would be deleted (%s) outside a destroy run", [r.address, concat(", ", r.change.actions)])
}
