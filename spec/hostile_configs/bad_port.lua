connections = {
  a = { kind = "source", port = "x" },
}
