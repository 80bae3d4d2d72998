connections = {
  a = { kind = "source", sslmode = "required" },
}
