// Package neigh owns neighbour resolution for the switch: the neighbour
// table ([Table]: back-end index to MAC address, written by one resolver and
// read lock-free by every shard) and the ARP [Resolver], which answers ARP
// for the VIP from user space (the switch's kernel does not own the VIP),
// announces it by gratuitous ARP, and resolves and refreshes the back-ends'
// MAC addresses. NDP for IPv6 will live here too.
//
// Guarantee: [Table.Lookup] reports a MAC address for a back-end only after
// a host sending from that back-end's configured address claimed it in an
// ARP packet, and it never blocks, locks or allocates.
//
// The resolver's socket is the small [Conn] interface; only [Listen] opens a
// real one (an AF_PACKET socket through github.com/mdlayher/packet), so the
// whole resolver is tested without root against an in-memory fake.
package neigh
