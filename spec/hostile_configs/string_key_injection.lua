connections = {
  a = { kind = "source", ["host\0x"] = "y" },
}
