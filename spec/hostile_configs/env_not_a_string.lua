connections = {
  a = { kind = "source", password = env({}) },
}
