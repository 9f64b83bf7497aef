# Every instance carries its client's id as a tag (client_id, or client on localcloud):
# aws_instance in tags_all (the provider's default_tags included), oci_core_instance in
# freeform_tags, localcloud_instance in tags.
package tenantform.instance_client_tag

import data.tenantform.lib
import rego.v1

enforcement := "soft-mandatory"

tag_fields := {
	"aws_instance": ["tags_all", "tags"],
	"oci_core_instance": ["freeform_tags"],
	"localcloud_instance": ["tags"],
}

deny contains msg if {
	some kind, _ in tag_fields
	some r in lib.planned_of(kind)
	not tagged(r)
	msg := sprintf("%s is not tagged client_id = %q", [r.address, input.client.id])
}

tagged(r) if {
	some name in tag_fields[r.type]
	tags := object.get(r.change.after, name, {})
	is_object(tags)
	some key in ["client_id", "client"]
	tags[key] == input.client.id
}
