connections = setmetatable({}, { __index = function() return {} end })
