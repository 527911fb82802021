//! Tunnel devices (`tunl0`, `vxlan.tortie`) and the encapsulation decision.
//! Built under the dataplane issue.
