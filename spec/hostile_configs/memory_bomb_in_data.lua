-- Data that fits while the config runs, but not once it is written back
-- to the parent: the sandbox runs out of memory outside the config's code.
local names, pad = {}, string.rep("x", 1000)
for i = 1, 100000 do names[i] = pad .. i end
connections = { a = { kind = "source", host = "localhost", tables = names } }
