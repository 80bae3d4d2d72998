connections = {
  a = { kind = "source", password = env("NEOCONN_SURELY_UNSET_VARIABLE") },
}
