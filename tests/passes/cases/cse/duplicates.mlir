// RUN: cse
// Ops with the same name, operands, attributes and types are computed once; the merge
// cascades (the two adds become equal once their operands are merged). Ops differing in
// an attribute, or in operand order, stay apart.
func.func @main(%x: tensor<2x3xf64>) -> (tensor<2x3xf64>, tensor<2x3xf64>, tensor<2x3xf64>, tensor<3xf64>, tensor<2xf64>) {
  %e1 = "gj.exp"(%x) : (tensor<2x3xf64>) -> tensor<2x3xf64>
  %e2 = "gj.exp"(%x) : (tensor<2x3xf64>) -> tensor<2x3xf64>
  %a1 = "gj.add"(%e1, %x) : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
  %a2 = "gj.add"(%e2, %x) : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
  %a3 = "gj.add"(%x, %e2) : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
  %s0 = "gj.reduce_sum"(%a1) {axes = [0], keepdims = false} : (tensor<2x3xf64>) -> tensor<3xf64>
  %s1 = "gj.reduce_sum"(%a2) {axes = [1], keepdims = false} : (tensor<2x3xf64>) -> tensor<2xf64>
  func.return %a1, %a2, %a3, %s0, %s1 : tensor<2x3xf64>, tensor<2x3xf64>, tensor<2x3xf64>, tensor<3xf64>, tensor<2xf64>
}
// CHECK:      [[E:%[0-9]+]] = "gj.exp"(%arg0
// CHECK-NEXT: [[A:%[0-9]+]] = "gj.add"([[E]], %arg0
// CHECK-NEXT: [[B:%[0-9]+]] = "gj.add"(%arg0, [[E]]
// CHECK-NEXT: [[S0:%[0-9]+]] = "gj.reduce_sum"([[A]]) {axes = [0]
// CHECK-NEXT: [[S1:%[0-9]+]] = "gj.reduce_sum"([[A]]) {axes = [1]
// CHECK-NEXT: func.return [[A]], [[A]], [[B]], [[S0]], [[S1]]
