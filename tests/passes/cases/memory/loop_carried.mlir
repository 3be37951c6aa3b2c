// RUN: fusion dce memory
// A while loop's carried values live in buffers of the before region's arguments for the
// whole loop; the body's arguments and the loop's results are views of them. A body kernel
// that makes carried value j from body argument j (its last read) writes straight into
// carried buffer j, so the yield copies nothing. The exp of the result is returned: an
// output, not arena.
func.func @main(%x: tensor<4xf32>, %n: tensor<i64>) -> tensor<4xf32> {
  %zero = "gj.constant"() {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %w:2 = "gj.while"(%zero, %x) ({
  ^bb0(%i: tensor<i64>, %a: tensor<4xf32>):
    %go = "gj.less"(%i, %n) : (tensor<i64>, tensor<i64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%i2: tensor<i64>, %a2: tensor<4xf32>):
    %one = "gj.constant"() {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %i3 = "gj.add"(%i2, %one) : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %a3 = "gj.tanh"(%a2) : (tensor<4xf32>) -> tensor<4xf32>
    "gj.yield"(%i3, %a3) : (tensor<i64>, tensor<4xf32>) -> ()
  }) : (tensor<i64>, tensor<4xf32>) -> (tensor<i64>, tensor<4xf32>)
  %e = "gj.exp"(%w#1) : (tensor<4xf32>) -> tensor<4xf32>
  func.return %e : tensor<4xf32>
}
// CHECK:      [[W:%[0-9]+]]:2 = "gj.while"
// CHECK-NEXT: ^bb0([[I:%arg[0-9]+]]: tensor<i64>, [[A:%arg[0-9]+]]: tensor<4xf32>):
// CHECK-NEXT:   [[GO:%[0-9]+]] = "gj.fused"([[I]], %arg1
// CHECK:      }, {
// CHECK-NEXT: ^bb0([[I2:%arg[0-9]+]]: tensor<i64>, [[A2:%arg[0-9]+]]: tensor<4xf32>):
// CHECK-NEXT:   [[I3:%[0-9]+]] = "gj.fused"([[I2]]
// CHECK:        [[A3:%[0-9]+]] = "gj.fused"([[A2]]
// CHECK:        "gj.yield"([[I3]], [[A3]]
// CHECK:      [[E:%[0-9]+]] = "gj.fused"([[W]]#1
// CHECK:      func.return [[E]]
// CHECK-NEXT: }
// CHECK-NEXT: // memory: [[I]] arena offset=[[IOFF:[0-9]+]] bytes=8
// CHECK-NEXT: // memory: [[A]] arena offset=[[AOFF:[0-9]+]] bytes=16
// CHECK-NEXT: // memory: [[I2]] alias offset=[[IOFF]] bytes=8 views [[I]]
// CHECK-NEXT: // memory: [[A2]] alias offset=[[AOFF]] bytes=16 views [[A]]
// CHECK-NEXT: // memory: [[W]]#0 alias offset=[[IOFF]] bytes=8 views [[I]]
// CHECK-NEXT: // memory: [[W]]#1 alias offset=[[AOFF]] bytes=16 views [[A]]
// CHECK-NEXT: // memory: [[GO]] arena offset={{[0-9]+}} bytes=1
// CHECK-NEXT: // memory: [[I3]] arena offset=[[IOFF]] bytes=8 over [[I2]]
// CHECK-NEXT: // memory: [[A3]] arena offset=[[AOFF]] bytes=16 over [[A2]]
// CHECK-NEXT: // memory: [[E]] output bytes=16
// CHECK-NEXT: // memory: arena {{[0-9]+}} bytes
