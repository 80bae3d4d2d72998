local x = require("os")
