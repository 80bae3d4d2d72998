connections = {
  a = { kind = "source", rules = { r = 5 } },
}
