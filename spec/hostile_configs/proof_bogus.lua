connections = {
  a = { kind = "source", proof = "sometimes" },
}
