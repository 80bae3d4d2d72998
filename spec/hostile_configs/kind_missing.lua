connections = {
  a = { host = "x" },
}
