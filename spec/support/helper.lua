-- Loaded by busted before the specs: make spec/support importable.
package.path = "spec/support/?.lua;" .. package.path
