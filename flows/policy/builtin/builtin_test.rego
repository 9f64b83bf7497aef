# The built-ins' own tests: tenantform policy test runs every test_* rule.
package tenantform.builtin_test

import data.tenantform.instance_cap
import data.tenantform.no_database_delete
import rego.v1

instance(i) := {
	"address": sprintf("localcloud_instance.this[%d]", [i]),
	"mode": "managed",
	"type": "localcloud_instance",
	"change": {"actions": ["create"], "after": {"name": "web"}},
}

test_instance_cap_allows_the_cap if {
	count(instance_cap.deny) == 0 with input as {"plan": {"resource_changes": [instance(i) | some i in numbers.range(1, 20)]}}
}

test_instance_cap_denies_one_more if {
	count(instance_cap.deny) == 1 with input as {"plan": {"resource_changes": [instance(i) | some i in numbers.range(1, 21)]}}
}

replaced_database := {
	"address": "localcloud_sql_database.main",
	"mode": "managed",
	"type": "localcloud_sql_database",
	"change": {"actions": ["delete", "create"], "after": {"name": "b"}},
}

test_a_database_replaced_by_a_provision_is_denied if {
	count(no_database_delete.deny) == 1 with input as {"operation": "provision", "plan": {"resource_changes": [replaced_database]}}
}

test_a_destroy_run_may_delete_a_database if {
	count(no_database_delete.deny) == 0 with input as {"operation": "destroy", "plan": {"resource_changes": [replaced_database]}}
}
