variable "size" {
  type        = string
  description = "Instance size: small, medium, large or bare-metal."
  default     = "small"
}
