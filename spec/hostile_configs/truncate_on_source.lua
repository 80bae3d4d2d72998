connections = {
  a = { kind = "source", truncate = true },
}
