connections = {
  a = { kind = "source", host = string.rep("h", 10000) },
}
