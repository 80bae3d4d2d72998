connections = {
  a = { kind = "source", tables = { { { { { "x" } } } } } },
}
