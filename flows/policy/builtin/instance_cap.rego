# A client holds at most params.max_instances_per_client instances after the plan.
package tenantform.instance_cap

import data.tenantform.lib
import rego.v1

enforcement := "soft-mandatory"

instances := [r.address | some r in lib.planned; r.type in lib.params.instance_types]

deny contains msg if {
	count(instances) > lib.params.max_instances_per_client
	msg := sprintf("the plan leaves %d instances, more than the cap of %d per client", [count(instances), lib.params.max_instances_per_client])
}
