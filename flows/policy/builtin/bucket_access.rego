# Buckets: uniform bucket-level access, and no public members except on the buckets meant
# to be public (a name ending with one of params.public_bucket_suffixes: the hospital
# document's "<client>-public" bucket).
package tenantform.bucket_access

import data.tenantform.lib
import rego.v1

enforcement := "soft-mandatory"

public_members := {"allUsers", "allAuthenticatedUsers"}

deny contains msg if {
	some r in lib.planned_of("google_storage_bucket")
	r.change.after.uniform_bucket_level_access != true
	msg := sprintf("%s must have uniform_bucket_level_access = true", [r.address])
}

deny contains msg if {
	some kind in {"google_storage_bucket_iam_member", "google_storage_bucket_iam_binding"}
	some r in lib.planned_of(kind)
	some member in members(r.change.after)
	member in public_members
	not meant_public(object.get(r.change.after, "bucket", ""))
	msg := sprintf("%s makes bucket %q readable by %s", [r.address, object.get(r.change.after, "bucket", "(known after apply)"), member])
}

deny contains msg if {
	some r in lib.planned_of("localcloud_bucket")
	r.change.after.public == true
	not meant_public(r.change.after.name)
	msg := sprintf("%s makes bucket %q public", [r.address, r.change.after.name])
}

members(after) := {after.member} if after.member
members(after) := {m | some m in after.members} if after.members

meant_public(name) if {
	is_string(name)
	some suffix in lib.params.public_bucket_suffixes
	endswith(name, suffix)
}
