"""Everything of bidhall that touches a socket, a disk, a database or the clock."""
