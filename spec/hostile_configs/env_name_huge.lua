connections = {
  a = { kind = "source", password = env(string.rep("X", 1e7)) },
}
