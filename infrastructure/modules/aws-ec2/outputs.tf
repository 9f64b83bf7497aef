output "instances" {
  description = "One entry per instance, in creation order."
  value = [
    for i in aws_instance.this : {
      instance_id = i.id
      private_ip  = i.private_ip
      public_ip   = i.public_ip
    }
  ]
}
