connections = {
  a = { kind = "destination", truncate = "always" },
}
