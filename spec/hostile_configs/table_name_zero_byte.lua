connections = {
  a = { kind = "source", tables = { "public.a\0b" } },
}
