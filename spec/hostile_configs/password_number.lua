connections = {
  a = { kind = "source", password = 83726152 },
}
