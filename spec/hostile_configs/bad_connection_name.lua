connections = {
  ["a b"] = { kind = "source" },
}
