# Helpers the built-in policies share (a library: no deny or warn of its own).
package tenantform.lib

import rego.v1

params := data.tenantform.params

# Resources the plan creates or keeps, with their planned attributes.
planned contains r if {
	some r in input.plan.resource_changes
	r.mode == "managed"
	not r.change.actions == ["delete"]
	r.change.after != null
}

planned_of(type) := {r | some r in planned; r.type == type}

deletes(r) if "delete" in r.change.actions

# A nested block of the google provider is a list of one object.
block(obj, name) := obj[name][0] if count(obj[name]) > 0
