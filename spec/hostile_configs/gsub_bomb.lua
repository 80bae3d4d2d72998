local s = string.rep("x", 1e6)
local y = string.gsub(s, ".", string.rep("y", 1e4))
