connections = {
  a = { kind = "source", tables = { "public." .. string.rep("n", 1500) } },
}
