connections = {
  a = { kind = "source", tables = { string.rep("n", 5000) } },
}
