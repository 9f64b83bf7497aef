# A client's stack lives in one of its target's allowed regions
# (params.allowed_regions["<target>"]; a target not listed is not restricted). The region
# is read from the client's inputs and from each resource's region or location.
package tenantform.allowed_regions

import data.tenantform.lib
import rego.v1

enforcement := "hard-mandatory"

allowed := lib.params.allowed_regions[input.client.target]

deny contains msg if {
	some region in regions
	not lower(region) in {lower(a) | some a in allowed}
	msg := sprintf("region %s is not allowed for target %s (allowed: %s)", [region, input.client.target, concat(", ", allowed)])
}

regions contains input.client.inputs.region if is_string(input.client.inputs.region)

regions contains input.client.inputs.provider_config.region if is_string(input.client.inputs.provider_config.region)

regions contains region if {
	some r in lib.planned
	some field in ["region", "location"]
	region := r.change.after[field]
	is_string(region)
}
