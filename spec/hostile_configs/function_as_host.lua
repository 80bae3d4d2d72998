connections = {
  a = { kind = "source", host = function() end },
}
