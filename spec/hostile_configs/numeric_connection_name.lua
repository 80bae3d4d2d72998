connections = {
  { kind = "source" },
}
