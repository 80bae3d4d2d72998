connections = {
  a = { kind = "source", schemas = { "a\0b" } },
}
